"""leaklib: the I/O and logic behind the leak-detection notebooks."""

import sys

__version__ = "0.1.0"

# jsonschema (loaded by nbformat, so by papermill, nbconvert and the runner) imports
# rfc3987-syntax when it is installed, and that module compiles a grammar on import: 1.1 s of
# every `leak` command, for IRI format checks that no notebook or schema here uses. Marking it
# absent makes jsonschema skip those two checks (it treats the package as not installed).
sys.modules.setdefault("rfc3987_syntax", None)
