"""The mlflow-aws CrossGuard policy pack (see __main__.py); its checks are plain functions in rules.py."""
