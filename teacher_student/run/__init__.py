"""The run: its directory and every path in it (`directory`), one step's checkpoint folder
(`checkpoints`), the config it keeps (`config`), its lock (`lock`) and its compiled steps
(`compile_cache`)."""
