"""The built-in SAE architectures, one module per architecture, each named after the architecture
it registers (:mod:`vsae.sae.arch_registry` lists them from the file names and imports one on first use)."""
