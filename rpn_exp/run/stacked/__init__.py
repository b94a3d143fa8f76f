"""Stacked groups (``launcher=stacked``): the jobs of a sweep that share every shape, trained as one model by one
Lightning Trainer (:mod:`rpn_exp.run.stacked.task`)."""
