"""What answers HTTP: the pages, the JSON API, JSON errors and the static files."""
