"""Render: tables, figures and the text/HTML/Markdown formats of the report.

Numbers become text through `robprune.formatting`; nothing here reads a results file.
"""
