# cloud-failover — see README.md. `make demo` and `make test` need nothing installed
# beforehand but Rust and Python 3 (moto comes from PyPI into .venv).
.PHONY: demo test lint fmt build clean-venv

demo:  ## The field report's failover and failback on a local moto server
	bash scripts/demo.sh

test:  ## Every test (unit, property, end-to-end through the SDK against moto)
	bash scripts/test.sh

lint:  ## Formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:  ## Debug build of the CLI and the functions
	cargo build --workspace

clean-venv:
	rm -rf .venv
