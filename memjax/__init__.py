"""memjax: fast many-seed studies of unique feature memorisation in JAX."""

__version__ = "0.1.0"
