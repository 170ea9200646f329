"""Moving in from peer indexes: read the layouts pypicloud, pypiserver and devpi-export leave, and import them."""
