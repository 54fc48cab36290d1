"""Mutation fuzzing of anedoctor's inputs: seeds (seeds.py), mutants (mutate.py), one case run and
classified (runner.py), campaigns (campaign.py, ``python -m tests.fuzz.campaign``), coverage-guided
fuzzing with atheris (atheris_loader.py)."""
