from django.db import models


class Item(models.Model):
    name = models.TextField()
    qty = models.IntegerField(default=0)


class Untracked(models.Model):
    name = models.TextField()
