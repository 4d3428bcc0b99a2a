"""Environment files: the shipped ones, the user's environment.yml (selectors, `pip:` sections), and
environment names."""
