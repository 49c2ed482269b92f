"""Generated code of package promoflow.v1 (do not edit; run clients/python/generate)."""
