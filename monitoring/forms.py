from django import forms


class ThresholdForm(forms.Form):
    warning = forms.FloatField()
    critical = forms.FloatField()
