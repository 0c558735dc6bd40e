"""Hybrid router Lambda: keeps sensitive requests on-prem and sends complex ones to SageMaker.

Runtime code only: the standard library and boto3 (imported lazily, where the cloud target or Secrets Manager is
used), nothing from the rest of the repository. ``handler.lambda_handler`` is the Lambda entry point.
"""
