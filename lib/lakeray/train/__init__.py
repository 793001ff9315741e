"""Distributed training on Ray (Ray Train's XGBoostTrainer: xgboost-ray does not work with xgboost >= 2.1)."""
