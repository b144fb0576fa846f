"""The ``cwl-pipeline`` command line."""
