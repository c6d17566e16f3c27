"""Local infrastructure for `vigil stack up|down|status`: the brokers and the database Vigil runs on."""
