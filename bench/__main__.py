"""`python -m bench`: the same as `vigil bench`."""

import typer

from bench.cli import bench

if __name__ == "__main__":
    typer.run(bench)
