"""Built-in ``<scheme>:`` image sources, one module each, imported on first use by
`vsae.data.image_sources.open_scheme` (found by file name): ``hf`` (Hugging Face datasets) and ``wds``
(WebDataset tar shards). Each module registers its opener with ``@source_scheme(name)``."""
