# The project's checks, as .ci/run runs them: make test test-slow lint type doc wheel floors
# make test: the fast default (slow tests left out); make test-slow: the learning tests
.PHONY: test test-slow lint format type doc build wheel floors check

test:
	pytest -q tests

test-slow:
	pytest -q -m slow tests

lint:
	ruff check .
	ruff format --check .

format:
	ruff format .
	ruff check --fix .

type:
	mypy sb3_mlsh

doc:
	python -m sphinx -W --keep-going -b html docs docs/_build/html

build:
	rm -rf dist
	python -m build --outdir dist .
	twine check --strict dist/*
	@python -c "import glob, os, sys; size = os.path.getsize(glob.glob('dist/*.tar.gz')[0]); print(f'sdist: {size / 1e6:.1f} MB (limit 5 MB: the results archive stays out, MANIFEST.in)'); sys.exit(size > 5e6)"

wheel: build
	bash .ci/wheel

floors:
	bash .ci/floors

check: test test-slow lint type doc wheel floors
