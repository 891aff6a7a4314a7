# cloud-failover — see README.md. `make demo` and `make test` need nothing installed
# beforehand but Rust and Python 3 (tools come from PyPI into .venv / .venv-sam).
.PHONY: demo test lint fmt build validate deploy invoke logs fuzz drill bench mutants aws-drill aws-drill-clean clean-venv docs-check

STACK ?= cloud-failover
EVENT ?=
# The Lambda architecture (arm64 | x86_64); empty: what samconfig.toml deploys, else what this
# machine builds (scripts/lambda-arch.sh: arm64 when it can, natively or with zig).
ARCH ?=
# More parameter overrides for the first (guided) `make deploy`, e.g. the fleet's:
# PARAMS="DeclarationPrefix=cloud-failover/fleet/ FleetVpcIds=vpc-1,vpc-2 ScopingTagValue='fleet-*'"
PARAMS ?=
export SAM_CLI_TELEMETRY = 0
TOOLS = $(shell bash scripts/ensure-sam.sh)

demo:  ## The field report's failover and failback on a local moto server
	bash scripts/demo.sh

test:  ## Every test (unit, property, end-to-end through the SDK against moto)
	bash scripts/test.sh

docs-check:  ## The docs' local commands as written (sh blocks marked <!-- ci: run -->), in a copy of the tree, against moto
	python3 scripts/docs-commands.py

mutants:  ## Mutation testing of the engine's files changed since main (ALL=1: every engine file; FILES=...: those; AGAIN=1: the last run's survivors), each against the unit tests that reach it (scripts/mutants.sh, README "Mutation testing")
	bash scripts/mutants.sh $(if $(ALL),--all) $(if $(AGAIN),--again) $(FILES)

lint:  ## Formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:  ## Release bootstrap binaries with cargo-lambda, for the architecture `make deploy` uses (ARCH=arm64|x86_64)
	lambda=$$(bash scripts/lambda-arch.sh $(ARCH)) && set -- $$lambda && \
	echo "Lambda architecture $$1 (cargo-lambda compiler $$2)" && \
	PATH="$(TOOLS):$$PATH" cargo lambda build --release --compiler $$2 \
	  $$(if [ $$2 = cargo-zigbuild ]; then [ $$1 = arm64 ] && echo --arm64 || echo --x86-64; fi) \
	  --bin failover --bin probe --bin inspect
	ls -l target/lambda/*/bootstrap

validate:  ## cfn-lint and sam validate --lint (offline); cfn-lint on the fleet pair template and the aws-drill lab; the rendered IAM judged request by request, parliament and cloudsplaining (tests/iam)
	$(TOOLS)/cfn-lint template.yaml templates/pair.yaml scripts/aws-drill/lab.yaml
	$(TOOLS)/sam validate --lint --region us-east-1
	$$(bash scripts/ensure-iam-tools.sh) tests/iam/evaluate.py

deploy:  ## sam build + deploy (guided the first time, PARAMS="K=V ..." as its defaults), for the Lambda architecture this machine builds (ARCH=arm64|x86_64)
	lambda=$$(bash scripts/lambda-arch.sh $(ARCH)) && set -- $$lambda && \
	echo "Lambda architecture $$1 (cargo-lambda compiler $$2; scripts/lambda-arch.sh)" && \
	PATH="$(TOOLS):$$PATH" CARGO_LAMBDA_COMPILER=$$2 $(TOOLS)/sam build --beta-features --parameter-overrides Architecture=$$1 && \
	if [ -f samconfig.toml ]; then $(TOOLS)/sam deploy; else $(TOOLS)/sam deploy --guided --parameter-overrides Architecture=$$1 $(PARAMS); fi

invoke:  ## The real failover binary under `cargo lambda watch`, invoked with events/ (or EVENT=file) against moto
	bash scripts/invoke-local.sh $(EVENT)

logs:  ## Tail the deployed function's logs
	$(TOOLS)/sam logs --stack-name $(STACK) --name FailoverFunction --tail

drill:  ## The field report's experiment locally: kill the active appliance, measure the gap (drill.svg)
	bash scripts/ensure-moto.sh >/dev/null
	cargo run --quiet --bin cf-lab -- drill --output table --plot drill.svg

aws-drill:  ## The field report's experiment on your AWS account: lab, stack, stop the active unit, the gap per path (docs/aws-drill.md; costs cents; not in CI)
	$(TOOLS)/python scripts/aws-drill/kit.py preflight
	cargo build --release --quiet -p cloud-failover
	PATH="$(TOOLS):$$PATH" $(TOOLS)/python scripts/aws-drill/kit.py run --cli target/release/cloud-failover \
	  --sam $(TOOLS)/sam $(if $(ARCH),--lambda-arch $(ARCH)) $(if $(YES),--yes) $(DRILL_ARGS)

aws-drill-clean:  ## Delete what an interrupted aws-drill left (its stacks and buckets; AWS_REGION and the regions .aws-drill/ remembers)
	$(TOOLS)/python scripts/aws-drill/kit.py cleanup $(DRILL_ARGS)

bench:  ## Reproduce BENCHMARKS.md (simulated EC2 failover times, bootstrap sizes, init, RSS, drill)
	bash scripts/bench.sh

fuzz:  ## Fuzz declaration and event parsing (SECONDS each, default 60); not in CI
	bash scripts/fuzz.sh $(SECONDS)

clean-venv:
	rm -rf .venv .venv-sam
