"""What a run leaves for people and machines: figures (`plots`), the evaluation and comparison
table (`reports`), deployable exports (`export`) and running them (`predict`)."""
