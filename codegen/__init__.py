"""Code generators: kernel descriptions to Python source (NumPy, Triton). Depends on ir/."""
