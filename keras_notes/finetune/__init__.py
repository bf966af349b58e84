"""Fine-tuning keras.applications bases on an image folder.

- ``archs``: the registry of bases (name -> constructor, preprocessing, sizes).
- ``models``: ``build_model`` and the course's two fine-tuned models.
"""
