"""Reporting: the paper-layout leaderboards (Markdown, CSV, LaTeX, HTML), their cells and small-N
marks, Fig. 7-style plots, per-group breakdowns and the checkpoint regression gate. Everything here reads
results; nothing here measures."""
