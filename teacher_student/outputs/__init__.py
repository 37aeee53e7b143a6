"""What a run leaves for people and machines: the evaluation and comparison table (`reports`),
numbers beyond accuracy (`metrics`), CPU latency (`latency`), training curves (`plots`) and
figures of the models on the test split (`model_plots`); deployable files (`convert`: each
format; `export`: every format of a run's model, checked), running them (`predict`), the model
the `predict` command asks (`classifier`) and the images and CSV of its answers
(`predictions`); the `export` and `predict` commands themselves (`commands`)."""
