"""The bottom layer: identifiers, references and the value objects everything else passes around."""
