"""`mlflow-aws verify`: inspect the deployed resources with boto3 and prove they are locked down."""
