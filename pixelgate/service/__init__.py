"""The one place rules live: jobs, access, files and media links."""
