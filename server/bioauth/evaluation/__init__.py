"""Offline accuracy, as the field measures it: the LFW protocol, false-match and false-non-match
rates with their confidence intervals, DET curves, and the calibration file the server decides by.

Used only by ``bioauth eval``; nothing on the request path imports it.
"""
