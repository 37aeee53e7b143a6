for name, title in (("reliability.png", "Calibration: reliability of every model"),
                    ("accuracy_vs_latency.png", "Accuracy against CPU latency")):
    if (reports_dir / name).exists():
        display(Markdown(f"**{title}**"), Image(filename=str(reports_dir / name)))
