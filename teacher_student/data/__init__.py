"""The data: what is an image file (`candidates`), where images come from (`sources/`, one module
per kind of source, and the `registry` that picks one), how they are decoded (`decode`, `images`,
`decoding`), read as labeled or unlabeled images (`labeled`, `unlabeled`), split (`splits`), and
how they reach the model (`batches`, `augment`)."""
