"""Evaluating a model: accuracy under attack (`accuracy`), the final evaluation on the test
split with the official AutoAttack (`final`), every trial's strong response, APGD-CE then
APGD-T worst case per image (`strong`), gradient-masking flags (`masking`), and the
re-evaluation of a search's finalists from their saved models (`evaluate_finalists`).

Kept empty of re-exports so that importing the torch-free `masking` does not load torch.
"""
