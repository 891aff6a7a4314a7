# cloud-failover — see README.md. `make demo` and `make test` need nothing installed
# beforehand but Rust and Python 3 (tools come from PyPI into .venv / .venv-sam).
.PHONY: demo test lint fmt build validate deploy invoke logs fuzz drill bench clean-venv

STACK ?= cloud-failover
EVENT ?=
export SAM_CLI_TELEMETRY = 0
TOOLS = $(shell bash scripts/ensure-sam.sh)

demo:  ## The field report's failover and failback on a local moto server
	bash scripts/demo.sh

test:  ## Every test (unit, property, end-to-end through the SDK against moto)
	bash scripts/test.sh

lint:  ## Formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:  ## Release bootstrap binaries with cargo-lambda (x86_64 here; ARM64: add --arm64 on a machine with that target)
	PATH="$(TOOLS):$$PATH" cargo lambda build --release --compiler cargo --bin failover --bin probe --bin inspect
	ls -l target/lambda/*/bootstrap

validate:  ## cfn-lint and sam validate --lint (offline)
	$(TOOLS)/cfn-lint template.yaml
	$(TOOLS)/sam validate --lint --region us-east-1

deploy:  ## sam build + deploy (guided the first time)
	PATH="$(TOOLS):$$PATH" CARGO_LAMBDA_COMPILER=cargo $(TOOLS)/sam build --beta-features
	if [ -f samconfig.toml ]; then $(TOOLS)/sam deploy; else $(TOOLS)/sam deploy --guided; fi

invoke:  ## The real failover binary under `cargo lambda watch`, invoked with events/ (or EVENT=file) against moto
	bash scripts/invoke-local.sh $(EVENT)

logs:  ## Tail the deployed function's logs
	$(TOOLS)/sam logs --stack-name $(STACK) --name FailoverFunction --tail

drill:  ## The field report's experiment locally: kill the active appliance, measure the gap (drill.svg)
	bash scripts/ensure-moto.sh >/dev/null
	cargo run --quiet --bin cf-lab -- drill --output table --plot drill.svg

bench:  ## Reproduce BENCHMARKS.md (simulated EC2 failover times, bootstrap sizes, init, RSS, drill)
	bash scripts/bench.sh

fuzz:  ## Fuzz declaration and event parsing (SECONDS each, default 60); not in CI
	bash scripts/fuzz.sh $(SECONDS)

clean-venv:
	rm -rf .venv .venv-sam
