"""ganzoo plugin "report": `ganzoo report RUN_DIR`, one self-contained HTML page of a run."""
