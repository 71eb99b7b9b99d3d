"""The QA browser: a read-only local web app over a store (`videozero browse`)."""
