"""Tables of patient billing: statement runs and statements, patient payments and credits, payment plans."""
