"""The generator's world shapes, one module each (see :mod:`churnrisk.generate`).

Each module's docstring describes its business: what drives churn, what each table
shows of it, and what a model can and cannot see.
"""
