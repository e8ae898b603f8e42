"""Using a saved classifier outside its run: rebuild it from its checkpoint, predict images with it."""
