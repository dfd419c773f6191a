"""The click front end of bigmodel."""
