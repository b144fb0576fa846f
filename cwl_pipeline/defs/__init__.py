"""The project's autoloaded definitions folder (``dg``): one ``defs.yaml`` per component instance."""
