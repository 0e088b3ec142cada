"""Data files shipped inside the package (read through ``pyrogen.data``)."""
