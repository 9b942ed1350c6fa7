"""The object detector that counts and locates objects in samples, and the matching rule that scores a sample against requested locations."""
