"""``python -m anedoctor.cli``."""

from . import main

main()
