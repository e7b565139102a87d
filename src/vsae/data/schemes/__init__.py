"""Built-in ``<scheme>:`` image sources, one module each, imported on first use by
`vsae.data.sources.open_scheme` (found by file name): ``hf`` (Hugging Face datasets) and ``wds``
(WebDataset tar shards). Each module registers itself with `register_source_scheme`."""
