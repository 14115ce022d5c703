"""Dataset generation, fine-tuning and demo-model recipes for the feedback coach."""
