"""Training: the plan of phases (`plan`), resumable fitting (`trainer`), the distiller and its
losses, and the distribution engine the machine calls for."""
