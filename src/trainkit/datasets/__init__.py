"""Layer 2: each dataset as the agency that collects it would record it."""
