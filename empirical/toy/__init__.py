"""The learned-vs-exact toy study on numerics' bump families, with torch wrappers of the exact denoisers."""
