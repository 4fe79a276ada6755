"""The triage wing: is a file movement a model leaving, how risky is it, which playbook runs."""
