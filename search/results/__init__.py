"""What a search leaves for analysis: Parquet export, TensorBoard, finalists chosen."""
