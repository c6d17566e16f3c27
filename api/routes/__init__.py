"""HTTP entrypoints: decode, check the caller, call the store, answer."""
