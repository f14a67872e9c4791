"""The memory inspector: staff pages to see, explain and correct what Engram remembers."""
