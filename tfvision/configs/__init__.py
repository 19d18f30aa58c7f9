"""Model Garden configuration dataclasses for the tfvision backbones.

Importing `tfvision.configs.backbones` also registers the backbone builders with Model
Garden's backbone factory (`tfvision.models.factory`).
"""
