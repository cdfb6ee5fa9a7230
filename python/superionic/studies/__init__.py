"""The guideline studies of science.md: data size, data quality, architecture, locality."""
