"""The demo application (``scripts/demo.py``, the training script's ``predictions.png``): image,
folder and video inputs with their person boxes (:mod:`.inputs`), a GluonCV person detector
(:mod:`.detector`) and drawn previews of validation predictions (:mod:`.preview`)."""
